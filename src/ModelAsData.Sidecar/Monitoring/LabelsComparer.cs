namespace ModelAsData.Sidecar.Monitoring;

/// <summary>Compares a gauge series' label values by content, to tell which series a read no longer has.</summary>
internal sealed class LabelsComparer : IEqualityComparer<string[]>
{
    public static readonly LabelsComparer Instance = new();

    public bool Equals(string[]? x, string[]? y) => x is not null && y is not null && x.AsSpan().SequenceEqual(y);

    public int GetHashCode(string[] labels)
    {
        var hash = new HashCode();
        foreach (var label in labels)
        {
            hash.Add(label, StringComparer.Ordinal);
        }

        return hash.ToHashCode();
    }
}
