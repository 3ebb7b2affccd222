using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Core.Onnx;
using ModelAsData.Core.Scoring;

namespace ModelAsData.Sidecar.Requests;

/// <summary>
/// One Open Inference Protocol v2 inference: <c>{"inputs": [{"name", "shape", "datatype", "data"}]}</c> → one
/// output per decoded column (<c>label</c>, <c>probability_setosa</c>…) with shape <c>[N]</c> (or <c>[N, k]</c>).
/// The first dimension of each input's shape is the row count; <c>data</c> is row-major, flat or nested.
/// </summary>
internal static class OipInference
{
    public static (JsonObject Json, int Rows) Infer(RequestVersion version, JsonObject body, string reference, PredictionLog log, CancellationToken cancellationToken)
    {
        var signature = version.Onnx.Signature;
        if (body["inputs"] is not JsonArray inputs || inputs.Count == 0)
        {
            throw Bad($"The request needs \"inputs\": [{{\"name\", \"shape\", \"datatype\", \"data\"}}]; model '{reference}' takes {signature.DescribeInputs()}.");
        }

        var given = new Dictionary<string, (List<JsonNode?> Data, int Rows)>(StringComparer.Ordinal);
        foreach (var input in inputs)
        {
            var name = input?["name"]?.GetValue<string>() ?? throw Bad("Every input needs a \"name\".");
            var spec = signature.Inputs.FirstOrDefault(i => i.Name == name)
                ?? throw Bad($"Model '{reference}' has no input '{name}'; it takes {signature.DescribeInputs()}.");
            if (input["shape"] is not JsonArray shape || shape.Count == 0)
            {
                throw Bad($"Input '{name}' needs a \"shape\", e.g. [1, {spec.Width}].");
            }

            var dims = shape.Select(d => d?.GetValue<long>() ?? -1).ToArray();
            var rows = (int)dims[0];
            var width = dims.Skip(1).Aggregate(1L, (a, b) => a * b);
            if (rows <= 0 || width != spec.Width)
            {
                throw Bad($"Input '{name}' has shape [{string.Join(", ", dims)}]; model '{reference}' takes [N, {spec.Width}] rows ({ModelSignature.Describe(spec)}).");
            }

            var data = new List<JsonNode?>();
            Flatten(input["data"] ?? throw Bad($"Input '{name}' needs \"data\"."), data);
            if (data.Count != rows * width)
            {
                throw Bad($"Input '{name}' has shape [{string.Join(", ", dims)}], so {rows * width} values, but {data.Count} were given.");
            }

            given[name] = (data, rows);
        }

        var missing = signature.Inputs.Where(i => !given.ContainsKey(i.Name)).Select(i => $"'{i.Name}'").ToList();
        if (missing.Count > 0)
        {
            throw Bad($"Model '{reference}' also needs input {string.Join(", ", missing)}; it takes {signature.DescribeInputs()}.");
        }

        var rowCount = given.Values.First().Rows;
        if (given.Values.Any(g => g.Rows != rowCount))
        {
            throw Bad("All inputs must have the same first dimension (the row count).");
        }

        var scorer = version.Rent(rowCount);
        try
        {
            scorer.Clear();
            var hashes = new string[rowCount];
            for (var row = 0; row < rowCount; row++)
            {
                scorer.BeginRow();
                var features = new JsonObject();
                var slot = 0;
                foreach (var spec in signature.Inputs)
                {
                    var (data, _) = given[spec.Name];
                    var values = new JsonArray();
                    for (var j = 0; j < spec.Width; j++, slot++)
                    {
                        var value = data[(row * spec.Width) + j];
                        if (scorer.Set(slot, JsonFeatures.ToClr(value)) is { } error)
                        {
                            scorer.CancelRow();
                            throw new ModelAsDataException(ErrorCode.FeatureMismatch, $"Model '{reference}', row {row}: {error}.");
                        }

                        values.Add(value?.DeepClone());
                    }

                    features[spec.Name] = spec.Width == 1 ? values[0]?.DeepClone() : values;
                }

                scorer.EndRow();
                hashes[row] = PredictionLog.Hash(JsonbText.Write(features));
            }

            var scored = scorer.Score(cancellationToken);
            var outputs = new JsonArray();
            for (var c = 0; c < scored.Columns.Count; c++)
            {
                var column = scored.Columns[c];
                var data = new JsonArray();
                var width = 1;
                for (var row = 0; row < scored.Count; row++)
                {
                    switch (scored.GetValue(row, c))
                    {
                        case double[] array:
                            width = array.Length;
                            foreach (var d in array)
                            {
                                data.Add(d);
                            }

                            break;
                        case double d:
                            data.Add(double.IsFinite(d) ? d : null);
                            break;
                        case var other:
                            data.Add(JsonValue.Create(other));
                            break;
                    }
                }

                outputs.Add(new JsonObject
                {
                    ["name"] = column.Name,
                    ["datatype"] = HttpInferenceService.DataType(column.Type),
                    ["shape"] = column.Type == ColumnType.RealArray ? new JsonArray(scored.Count, width) : new JsonArray(scored.Count),
                    ["data"] = data,
                });
            }

            var now = DateTime.UtcNow;
            for (var row = 0; row < scored.Count; row++)
            {
                log.Add(new PredictionLogEntry(now, "http", version.Model, version.Version, hashes[row], Core.Scoring.RequestPredictor.ToJson(scored, version.Model, version.Version, row), null, null));
            }

            var response = new JsonObject
            {
                ["model_name"] = version.Model,
                ["model_version"] = version.Version.ToString(CultureInfo.InvariantCulture),
            };
            if (body["id"] is JsonValue id)
            {
                response["id"] = id.DeepClone();
            }

            response["outputs"] = outputs;
            return (response, scored.Count);
        }
        finally
        {
            version.Return(scorer);
        }
    }

    public static ModelAsDataException Bad(string message) => new(ErrorCode.FeatureMismatch, message);

    private static void Flatten(JsonNode node, List<JsonNode?> into)
    {
        if (node is JsonArray array)
        {
            foreach (var item in array)
            {
                if (item is JsonArray)
                {
                    Flatten(item, into);
                }
                else
                {
                    into.Add(item);
                }
            }
        }
        else
        {
            into.Add(node);
        }
    }
}
