using System.Text.Json.Nodes;

namespace ModelAsData.Core.Monitoring;

/// <summary>Profiles as the JSON mad.store_baseline takes and the embedded store keeps: {column, type, edges | categories, counts, null_count, spread}.</summary>
public static class ProfileJson
{
    public static JsonArray ToJson(IEnumerable<ColumnProfile> profiles)
    {
        var array = new JsonArray();
        foreach (var p in profiles)
        {
            var node = new JsonObject
            {
                ["column"] = p.Column,
                ["type"] = p.Type == ProfileType.Numeric ? "numeric" : "category",
                ["counts"] = new JsonArray(p.Counts.Select(c => (JsonNode?)JsonValue.Create(c)).ToArray()),
                ["null_count"] = p.NullCount,
                ["spread"] = p.Spread,
            };
            if (p.Type == ProfileType.Numeric)
            {
                node["edges"] = new JsonArray(p.Edges.Select(e => (JsonNode?)JsonValue.Create(e)).ToArray());
            }
            else
            {
                node["categories"] = new JsonArray(p.Categories.Select(c => (JsonNode?)JsonValue.Create(c)).ToArray());
            }

            array.Add(node);
        }

        return array;
    }
}
