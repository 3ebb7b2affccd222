using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Registry;

namespace ModelAsData.Postgres.Registry;

// Dapper targets: plain settable classes with the column aliases of RegistrySql, converted to Core's records here.

internal sealed class VersionRow
{
    public string Model { get; set; } = "";
    public int Version { get; set; }
    public string Sha256 { get; set; } = "";
    public long SizeBytes { get; set; }
    public string Status { get; set; } = "";
    public string? Reason { get; set; }
    public string? Signature { get; set; }
    public string Metadata { get; set; } = "{}";
    public string CreatedBy { get; set; } = "";
    public DateTime CreatedAt { get; set; }

    public ModelVersion ToModel() => new(
        Model, Version, Sha256, SizeBytes,
        Enum.Parse<VersionStatus>(Status, ignoreCase: true),
        Reason,
        Signature is null ? null : ModelSignature.FromJson(Signature),
        JsonNode.Parse(Metadata)?.AsObject() ?? [],
        CreatedBy,
        RowTime.ToOffset(CreatedAt));
}

internal sealed class SummaryRow
{
    public string Model { get; set; } = "";
    public int Versions { get; set; }
    public int? LatestReady { get; set; }
    public string Aliases { get; set; } = "{}";
    public DateTime UpdatedAt { get; set; }

    public ModelSummary ToModel()
    {
        var aliases = (JsonNode.Parse(Aliases)?.AsObject() ?? [])
            .ToDictionary(p => p.Key, p => p.Value!.GetValue<int>(), StringComparer.Ordinal);
        return new ModelSummary(Model, Versions, LatestReady, aliases, RowTime.ToOffset(UpdatedAt));
    }
}

internal sealed class AliasRow
{
    public string Alias { get; set; } = "";
    public int Version { get; set; }
}

internal sealed class MoveRow
{
    public string Model { get; set; } = "";
    public string Alias { get; set; } = "";
    public int? FromVersion { get; set; }
    public int ToVersion { get; set; }
    public string MovedBy { get; set; } = "";
    public DateTime MovedAt { get; set; }
    public string? Reason { get; set; }

    public AliasMove ToModel() => new(Model, Alias, FromVersion, ToVersion, MovedBy, RowTime.ToOffset(MovedAt), Reason);
}

internal static class RowTime
{
    /// <summary>Npgsql reads timestamptz as a UTC <see cref="DateTime"/>.</summary>
    public static DateTimeOffset ToOffset(DateTime utc) => new(DateTime.SpecifyKind(utc, DateTimeKind.Utc));
}
