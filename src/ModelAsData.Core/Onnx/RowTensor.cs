using System.Globalization;

namespace ModelAsData.Core.Onnx;

/// <summary>
/// One row's value of an array output column: its elements in row-major order, in the array type of the column
/// (<c>float[]</c>, <c>double[]</c>, <c>long[]</c>, <c>bool[]</c>, <c>string[]</c>), and the row's dimensions
/// (<c>[]</c> for a scalar, <c>[3, 32, 32]</c> for an image). A copy: the caller owns it.
/// </summary>
public sealed record RowTensor(Array Values, long[] Dims)
{
    /// <summary>The elements as an array of the row's rank (<c>float[3, 32, 32]</c>), as PostgreSQL's multi-dimensional arrays are written.</summary>
    public Array ToRanked()
    {
        if (Dims.Length <= 1)
        {
            return Values;
        }

        var ranked = Array.CreateInstance(Values.GetType().GetElementType()!, Dims);
        if (Values is string[] strings)
        {
            var index = new int[Dims.Length];
            foreach (var text in strings)
            {
                ranked.SetValue(text, index);
                for (var d = index.Length - 1; d >= 0 && ++index[d] == Dims[d]; d--)
                {
                    index[d] = 0;
                }
            }

            return ranked;
        }

        Buffer.BlockCopy(Values, 0, ranked, 0, Buffer.ByteLength(Values));
        return ranked;
    }

    /// <summary>Nested brackets by the row's dimensions, numbers invariant (<c>[[1, 2], [3, 4]]</c>).</summary>
    public override string ToString()
    {
        var builder = new System.Text.StringBuilder();
        var at = 0;
        Write(builder, 0, ref at);
        return builder.ToString();
    }

    private void Write(System.Text.StringBuilder builder, int dim, ref int at)
    {
        if (dim == Dims.Length)
        {
            builder.Append(Values.GetValue(at++) switch
            {
                float f => f.ToString("R", CultureInfo.InvariantCulture),
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                IFormattable other => other.ToString(null, CultureInfo.InvariantCulture),
                var other => other?.ToString(),
            });
            return;
        }

        builder.Append('[');
        for (var i = 0; i < Dims[dim]; i++)
        {
            if (i > 0)
            {
                builder.Append(", ");
            }

            Write(builder, dim + 1, ref at);
        }

        builder.Append(']');
    }
}
