using System.Globalization;

namespace ModelAsData.Sync;

/// <summary>Times as the embedded store writes them: UTC ISO-8601 text with microseconds, which sorts as time.</summary>
internal static class SyncTime
{
    public static string Now() => Text(DateTime.UtcNow);

    public static string Text(DateTime time) =>
        DateTime.SpecifyKind(time, time.Kind == DateTimeKind.Unspecified ? DateTimeKind.Utc : time.Kind).ToUniversalTime()
            .ToString("yyyy-MM-dd'T'HH:mm:ss.ffffff'Z'", CultureInfo.InvariantCulture);
}
