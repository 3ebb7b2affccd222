using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core.Onnx;

namespace ModelAsData.Core;

/// <summary>
/// Which column feeds each feature slot of a model (see <see cref="ModelScorer"/>). Written by users as JSON: each
/// model input to a column, or to a list of columns for an <c>[N, k]</c> input:
/// <c>{"float_input": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}</c>.
/// </summary>
/// <remarks>
/// An input may instead be fed whole from one column per row (a tensor column: JSON text or a BLOB in the embedded
/// store, which has no array types): when the mapping gives one column (or the table has one of its name) for an
/// input that takes more than one value per row or a dynamic number of them. PostgreSQL decides by the column's type
/// (an array or bytea, sql/postgres/016_tensor_columns.sql).
/// </remarks>
public sealed class FeatureMapping
{
    private FeatureMapping(IReadOnlyList<string> slotColumns, IReadOnlyList<int> slotNumbers, IReadOnlyList<(int Input, string Column)> tensorColumns, JsonObject json)
    {
        SlotColumns = slotColumns;
        SlotNumbers = slotNumbers;
        TensorColumns = tensorColumns;
        Json = json;
    }

    /// <summary>The source column of each slot fed from scalar columns, as the table spells it.</summary>
    public IReadOnlyList<string> SlotColumns { get; }

    /// <summary>For each entry of <see cref="SlotColumns"/>, the scorer slot it feeds (inputs fed whole have none here).</summary>
    public IReadOnlyList<int> SlotNumbers { get; }

    /// <summary>The inputs fed whole from one tensor column per row, by input index.</summary>
    public IReadOnlyList<(int Input, string Column)> TensorColumns { get; }

    /// <summary>The mapping in its JSON form, with the table's spelling of every column.</summary>
    public JsonObject Json { get; }

    /// <summary>
    /// Maps a model's inputs to a table's columns: by <paramref name="mapping"/> when given, else by the model's
    /// metadata key <c>features</c> (same form), else each input to the column of its own name. Column names match
    /// case-insensitively. A mismatch throws a message that names the input, what it needs and what the table has.
    /// PostgreSQL's <c>mad.map_features</c> (sql/postgres/010_prediction_tables.sql) applies the same rules in SQL and is
    /// the authority for the messages: Contract/FeatureMappingContractTests asserts the same text on both stores.
    /// </summary>
    /// <param name="model">The model's name (without <c>@alias</c>), for messages.</param>
    /// <param name="source">The source table as messages name it.</param>
    public static FeatureMapping Resolve(ModelSignature signature, string model, JsonObject? mapping, string source, IReadOnlyList<string> tableColumns)
    {
        var byName = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var column in tableColumns)
        {
            byName.TryAdd(column, column);
        }

        var slots = new List<string>(signature.FeatureCount);
        var numbers = new List<int>(signature.FeatureCount);
        var tensors = new List<(int, string)>();
        var json = new JsonObject();
        for (int index = 0, slot = 0; index < signature.Inputs.Count; slot += signature.Inputs[index].Width, index++)
        {
            var input = signature.Inputs[index];
            var wanted = Wanted(input, mapping);
            if (wanted.Count == 1 && (input.Width != 1 || input.IsRagged) && byName.TryGetValue(wanted[0], out var whole))
            {
                tensors.Add((index, whole));
                json[input.Name] = new JsonArray(whole);
                continue;
            }

            if (input.IsRagged)
            {
                var given = mapping?.ContainsKey(input.Name) == true ? $"{wanted.Count} column(s)" : $"a column '{input.Name}', which the table does not have as an array";
                throw new ModelAsDataException(ErrorCode.InvalidArgument,
                    $"Model '{model}' input {ModelSignature.Describe(input)} has a dynamic size per row: it is fed from one array column per row (real[], bigint[], ... or bytea), not from {given}.");
            }

            if (wanted.Count != input.Width)
            {
                var how = mapping?.ContainsKey(input.Name) == true
                    ? $"the mapping gives {wanted.Count} column(s)"
                    : $"the table has no column '{input.Name}'";
                throw new ModelAsDataException(ErrorCode.InvalidArgument,
                    $"Model '{model}' input {ModelSignature.Describe(input)} takes {input.Width} value(s) per row, but {how}. " +
                    $"Map it with features => '{{\"{input.Name}\": [{(input.Width == 1 ? "\"column\"" : "\"column1\", \"column2\", ...")}]}}'. " +
                    $"Columns: {string.Join(", ", tableColumns)}.");
            }

            var resolved = new JsonArray();
            foreach (var column in wanted)
            {
                if (!byName.TryGetValue(column, out var actual))
                {
                    throw new ModelAsDataException(ErrorCode.InvalidArgument,
                        $"Model '{model}' input '{input.Name}' is mapped to column '{column}', which {source} does not have. Columns: {string.Join(", ", tableColumns)}.");
                }

                numbers.Add(slot + resolved.Count);
                slots.Add(actual);
                resolved.Add(actual);
            }

            json[input.Name] = resolved;
        }

        var unknown = mapping?.Select(p => p.Key).Where(k => signature.Inputs.All(i => i.Name != k)).ToList();
        if (unknown is { Count: > 0 })
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The mapping names {string.Join(", ", unknown.Select(u => $"'{u}'"))}, which model '{model}' does not take; its inputs: {string.Join(", ", signature.Inputs.Select(i => i.Name))}.");
        }

        return new FeatureMapping(slots, numbers, tensors, json);
    }

    /// <summary>Parses a mapping given as JSON text; null or blank means none.</summary>
    public static JsonObject? Parse(string? json)
    {
        if (string.IsNullOrWhiteSpace(json))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(json) as JsonObject
                ?? throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Features must be a JSON object such as {{\"float_input\": [\"a\", \"b\"]}}; got {json}.");
        }
        catch (JsonException e)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"Features are not valid JSON ({e.Message}): {json}", e);
        }
    }

    private static List<string> Wanted(InputSpec input, JsonObject? mapping)
    {
        var node = mapping?[input.Name];
        return node switch
        {
            null when mapping?.ContainsKey(input.Name) != true => [input.Name],
            JsonValue value when value.TryGetValue<string>(out var column) => [column],
            JsonArray array when array.All(e => e is JsonValue v && v.GetValueKind() == JsonValueKind.String) => array.Select(e => e!.GetValue<string>()).ToList(),
            _ => throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The mapping of input '{input.Name}' must be a column name or a list of column names; got {node?.ToJsonString() ?? "null"}."),
        };
    }
}
