using System.Reflection;
using System.Security.Cryptography;
using System.Text;

namespace ModelAsData.Postgres.Migrations;

/// <summary>One numbered forward-only script of <c>sql/postgres/</c>, embedded in this assembly.</summary>
/// <param name="Name">The file name, e.g. <c>001_schemas_and_roles.sql</c>; scripts run in ordinal order of name.</param>
/// <param name="Checksum">Lower-case hex sha256 of the text with line endings normalised, so a checkout with CRLF does not look changed.</param>
public sealed record MigrationScript(string Name, string Sql, string Checksum)
{
    private const string ResourcePrefix = "ModelAsData.Postgres.Sql.";

    /// <summary>Every embedded script, sorted by name.</summary>
    public static IReadOnlyList<MigrationScript> LoadEmbedded()
    {
        var assembly = typeof(MigrationScript).Assembly;
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Order(StringComparer.Ordinal)
            .Select(n => FromText(n[ResourcePrefix.Length..], Read(assembly, n)))
            .ToList();
    }

    public static MigrationScript FromText(string name, string sql)
    {
        var normalised = sql.Replace("\r\n", "\n", StringComparison.Ordinal);
        var checksum = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(normalised)));
        return new MigrationScript(name, normalised, checksum);
    }

    private static string Read(Assembly assembly, string resource)
    {
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"The embedded migration {resource} is missing.");
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }
}
