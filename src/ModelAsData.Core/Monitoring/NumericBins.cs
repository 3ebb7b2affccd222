using System.Numerics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace ModelAsData.Core.Monitoring;

/// <summary>
/// A numeric profile's bin of a value, as <see cref="ColumnProfile.BinOf(double)"/> finds it, for the counting hot path.
/// The bin is the number of edges ≤ value; on ascending edges that count is what the binary search finds, and it is
/// taken four edges per compare with no branch on the value: a binary search over ~10 edges of scattered values
/// mispredicts about every other step, and that was most of what counting cost a refresh (docs/MONITORING.md).
/// Edges that are not ascending (or without vector hardware) are searched as before. Immutable; thread-safe.
/// </summary>
internal sealed class NumericBins
{
    /// <summary>The edges, padded with NaN (never ≤ anything) to a whole number of vectors.</summary>
    private readonly double[] _padded;
    private readonly double[] _edges;
    private readonly bool _counts;

    public NumericBins(double[] edges)
    {
        _edges = edges;
        _counts = Vector256.IsHardwareAccelerated && Ascending(edges);
        var width = Vector256<double>.Count;
        _padded = new double[(edges.Length + width - 1) / width * width];
        _padded.AsSpan().Fill(double.NaN);
        edges.CopyTo(_padded, 0);
    }

    public int Of(double value)
    {
        int lo;
        if (_counts)
        {
            var v = Vector256.Create(value);
            ref var start = ref MemoryMarshal.GetArrayDataReference(_padded);
            lo = 0;
            for (var i = 0; i < _padded.Length; i += Vector256<double>.Count)
            {
                lo += BitOperations.PopCount(Vector256.LessThanOrEqual(Vector256.LoadUnsafe(ref start, (nuint)i), v).ExtractMostSignificantBits());
            }
        }
        else
        {
            int hi = _edges.Length;
            lo = 0;
            while (lo < hi)
            {
                var mid = (lo + hi) >>> 1;
                if (_edges[mid] <= value)
                {
                    lo = mid + 1;
                }
                else
                {
                    hi = mid;
                }
            }
        }

        // The top edge in the last inner bin (width_bucket's rule, as ColumnProfile.BinOf).
        return lo == _edges.Length && _edges.Length > 1 && value == _edges[^1] ? lo - 1 : lo;
    }

    /// <summary>Whether each edge is ≤ the next (NaN is not): then counting edges ≤ value equals the binary search.</summary>
    private static bool Ascending(double[] edges)
    {
        for (var i = 0; i < edges.Length; i++)
        {
            if (double.IsNaN(edges[i]) || (i > 0 && !(edges[i - 1] <= edges[i])))
            {
                return false;
            }
        }

        return true;
    }
}
