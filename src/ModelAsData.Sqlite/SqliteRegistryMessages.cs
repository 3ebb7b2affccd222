using ModelAsData.Core;
using ModelAsData.Core.Registry;

namespace ModelAsData.Sqlite;

/// <summary>
/// The registry's error messages on the embedded store, word for word those of PostgreSQL's mad.resolve,
/// mad.set_alias and mad.ready_signature and their mad.describe_* helpers (sql/postgres/003 and 004), which are the
/// authority: Contract/ResolutionContractTests asserts the same text on both stores.
/// </summary>
internal static class SqliteRegistryMessages
{
    private const string SidecarHint = "A running sidecar (`mad serve`) validates pending versions.";

    public static ModelAsDataException NoSuchModel(string model, IReadOnlyList<string> models) => new(ErrorCode.NotFound,
        $"Model '{model}' does not exist; {(models.Count == 0 ? "there are no models yet: push one with mad.push_model or `mad models push`" : "the models are " + string.Join(", ", models.Select(m => $"'{m}'")))}.");

    public static ModelAsDataException NoSuchVersion(string model, int version, IReadOnlyList<(long Version, string Status)> versions) => new(ErrorCode.NotFound,
        $"Model '{model}' has no version {version}; {DescribeVersions(versions)}.");

    public static ModelAsDataException NoSuchAlias(string model, string alias, IReadOnlyDictionary<string, int> aliases) => new(ErrorCode.NotFound,
        $"Model '{model}' has no alias '{alias}'; {(aliases.Count == 0 ? "it has no aliases" : "its aliases are " + string.Join(", ", aliases.OrderBy(a => a.Key, StringComparer.Ordinal).Select(a => $"{a.Key} -> {a.Value}")))}.");

    public static ModelAsDataException NoReadyVersion(string model, IReadOnlyList<(long Version, string Status)> versions) => new(ErrorCode.NotReady,
        $"Model '{model}' has no ready version yet; {DescribeVersions(versions)}. {SidecarHint}");

    /// <summary>What scoring or binding a version that is not ready says (mad.ready_signature).</summary>
    public static ModelAsDataException NotReadyToScore(ModelVersion version) => new(ErrorCode.NotReady,
        $"Model {version.Model}@{version.Version} is {Word(version.Status)}: only a ready version can score. {SidecarHint}");

    public static ModelAsDataException AliasNeedsReady(string model, string alias, ModelVersion target) => new(ErrorCode.NotReady, target.Status == VersionStatus.Rejected
        ? $"Cannot point {model}@{alias} at version {target.Version}: it was rejected ({target.Reason}), and an alias can only point at a ready version. Push a model ONNX Runtime can load, then point the alias at its version."
        : $"Cannot point {model}@{alias} at version {target.Version}: it is {Word(target.Status)}, and an alias can only point at a ready version. {SidecarHint[..^1]}; try again once it is ready.");

    /// <summary>What deploying a version that is not ready says (mad.require_ready_version, 017), the hint appended.</summary>
    public static ModelAsDataException NotReadyToDeploy(ModelVersion version, string what, IReadOnlyList<(long Version, string Status)> versions) => new(ErrorCode.NotReady,
        version.Status == VersionStatus.Rejected
            ? $"Cannot deploy {version.Model}@{version.Version} as {what}: it was rejected ({version.Reason}); {DescribeVersions(versions)}. Push a model ONNX Runtime can load, then deploy its version."
            : $"Cannot deploy {version.Model}@{version.Version} as {what}: it is {Word(version.Status)}, and only a ready version is served; {DescribeVersions(versions)}. {SidecarHint[..^1]}; try again once it is ready.");

    private static string DescribeVersions(IReadOnlyList<(long Version, string Status)> versions) =>
        versions.Count == 0 ? "it has no versions" : "its versions are " + string.Join(", ", versions.Select(v => $"{v.Version} ({v.Status})"));

    private static string Word(VersionStatus status) => status.ToString().ToLowerInvariant();
}
