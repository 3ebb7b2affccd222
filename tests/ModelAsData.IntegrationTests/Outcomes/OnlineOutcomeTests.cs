using System.Globalization;
using System.Text.Json.Nodes;
using ModelAsData.Core.Export;
using ModelAsData.Postgres.Export;
using ModelAsData.IntegrationTests.Requests;

namespace ModelAsData.IntegrationTests.Outcomes;

/// <summary>
/// Online requests linked to their outcomes by the caller's key (051): CALL mad.predict and mad.predict_async with
/// key =&gt; ..., answered by a real sidecar with the real rf_iris model, graded by mad.performance('online:&lt;model&gt;'),
/// compared by mad.compare and exported as a training set.
/// </summary>
public sealed class OnlineOutcomeTests(PostgresDatabase database) : OnlineRequestTests(database), IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mad-online-outcomes-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact(Timeout = 180_000)]
    public async Task Keyed_requests_are_graded_by_their_keys_outcomes_and_unkeyed_ones_are_not_counted()
    {
        var model = await PushIrisAsync();
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        var events = Sql.UniqueName("events");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{events} (customer_id bigint, label text, observed_at timestamptz)");
        await using var sidecar = await StartSidecarAsync();

        // Before the binding: the key is kept, the features are not.
        await CallAsync(model, RequestSupport.Setosa, "0");
        await Eventually.WaitForAsync(
            () => Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.prediction_log l WHERE l.model = @model AND l.key = '0'", new { model }),
            n => n == 1, "the unbound row in the prediction log");
        await Database.DataSource.ExecuteAsync(
            $"SELECT mad.set_outcomes('online:{model}', source => 'public.{events}', key => '{{customer_id}}', label => 'label', observed_at => 'observed_at')");

        for (var k = 1; k <= 20; k++)
        {
            if (k == 17)
            {
                await Database.DataSource.ScalarAsync<long>("SELECT mad.predict_async(@model, @features::jsonb, key => '17')", new { model, features = RequestSupport.Versicolor });
                continue;
            }

            await CallAsync(model, k % 2 == 0 ? RequestSupport.Versicolor : RequestSupport.Virginica, k.ToString(CultureInfo.InvariantCulture));
        }

        for (var i = 0; i < 5; i++)
        {
            await CallAsync(model, RequestSupport.Setosa, key: null);  // unkeyed: nothing links them to an outcome
        }

        var logged = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<(string? Key, string Label, bool HasFeatures)>(
                "SELECT l.key, l.outputs ->> 'label', l.features IS NOT NULL FROM mad.prediction_log l WHERE l.model = @model", new { model }),
            rows => rows.Count == 26, "the prediction log");
        Assert.Equal(5, logged.Count(r => r.Key is null));
        Assert.Equal(21, logged.Select(r => r.Key).OfType<string>().Distinct().Count());
        Assert.False(logged.Single(r => r.Key == "0").HasFeatures);   // served before the binding
        Assert.All(logged.Where(r => r.Key is not null && r.Key != "0"), r => Assert.True(r.HasFeatures));
        Assert.All(logged.Where(r => r.Key is null), r => Assert.False(r.HasFeatures));
        Assert.Equal("17", await Database.DataSource.ScalarAsync<string>("SELECT key FROM mad.requests WHERE model = @model AND kind = 'async'", new { model }));

        // Keys 1..17 get labels after they were served: 1..12 and 17 as predicted, 13..16 another class.
        var predicted = logged.Where(r => r.Key is not null).ToDictionary(r => r.Key!, r => r.Label);
        var labels = Enumerable.Range(1, 17).Select(k =>
        {
            var p = predicted[k.ToString(CultureInfo.InvariantCulture)];
            return (k, k is >= 13 and <= 16 ? (p == "0" ? "1" : "0") : p);
        });
        await Database.DataSource.ExecuteAsync(
            $"INSERT INTO public.{events} VALUES " + string.Join(", ", labels.Select(l => $"({l.k}, '{l.Item2}', clock_timestamp())")));

        var accuracy = (await Database.DataSource.QueryAsync<(int Version, string Arm, double Value, long Labeled, double Coverage)>(
            "SELECT version, arm, value, n_labeled, coverage FROM mad.performance(@table) WHERE metric = 'accuracy'", new { table = $"online:{model}" })).Single();
        Assert.Equal((1, "champion"), (accuracy.Version, accuracy.Arm));
        Assert.Equal(13.0 / 17, accuracy.Value, 12);
        Assert.Equal(17, accuracy.Labeled);
        Assert.Equal(17.0 / 21, accuracy.Coverage, 12);  // of the 21 keyed rows; the 5 unkeyed are not in it

        // mad.compare reports the model's online traffic beside its tables.
        var compared = (await Database.DataSource.QueryAsync<(string Table, string Arm, long N, long Labeled)>(
            "SELECT prediction_table, arm, n, n_labeled FROM mad.compare(@model, 'production')", new { model })).Single();
        Assert.Equal(($"online:{model}", "champion", 21L, 17L), compared);

        // The training set: the key, the features the key was sent with, the label and what was served.
        var out_ = Path.Combine(_directory, "online.csv");
        var manifest = await new PostgresTrainingSets(Database.DataSource).ExportAsync(new TrainingSetRequest
        {
            PredictionTable = $"online:{model}", Out = out_, Format = TrainingSetFormat.Csv, Seed = 1, Cutoff = DateTimeOffset.UtcNow.AddHours(1),
        }, cancellationToken: Ct);
        var lines = File.ReadAllLines(out_);
        Assert.Equal("key,features,label,observed_at,served_version,served_arm,served_outputs,served_at,served_device", lines[0]);
        Assert.Equal(17, lines.Length - 1);
        Assert.Equal(17, manifest.Files.Sum(f => f.Rows));
        Assert.Equal([new TrainingSetVersion(1, 17)], manifest.Versions);
        var two = lines.Single(l => l.StartsWith("2,", StringComparison.Ordinal));
        Assert.Contains("7.0", two, StringComparison.Ordinal);   // key 2 was sent Versicolor's features
        Assert.Contains(",1,champion,", two, StringComparison.Ordinal);
    }

    [Fact(Timeout = 180_000)]
    public async Task An_http_inference_keeps_its_key_but_is_not_graded_and_a_batch_keeps_none()
    {
        var model = await PushIrisAsync();
        await Database.DataSource.ExecuteAsync("SELECT mad.deploy(@model, 'production', 1)", new { model });
        await using var roles = new Hostile.HostileRoles(Database);
        var token = await HttpDoorSupport.TokenAsync(Database, await roles.GroupAsync("caller", "IN ROLE mad_user"));
        await using var sidecar = await StartSidecarAsync($"127.0.0.1:{RequestSupport.FreePort()}");
        using var http = HttpDoorSupport.Client(sidecar, token);

        var one = JsonNode.Parse(HttpDoorSupport.IrisBody(1))!.AsObject();
        one["parameters"] = new JsonObject { ["key"] = 4242 };
        using (var response = await http.PostAsync($"/v2/models/{model}/infer", HttpDoorSupport.Json(one.ToJsonString()), Ct))
        {
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(Ct));
        }

        var three = JsonNode.Parse(HttpDoorSupport.IrisBody(3))!.AsObject();
        three["parameters"] = new JsonObject { ["key"] = "batch" };
        using (var response = await http.PostAsync($"/v2/models/{model}/infer", HttpDoorSupport.Json(three.ToJsonString()), Ct))
        {
            Assert.True(response.IsSuccessStatusCode, await response.Content.ReadAsStringAsync(Ct));
        }

        var keys = await Eventually.WaitForAsync(
            () => Database.DataSource.QueryAsync<string?>("SELECT l.key FROM mad.prediction_log l WHERE l.model = @model AND l.door = 'http' ORDER BY l.key", new { model }),
            rows => rows.Count == 4, "the prediction log");
        Assert.Equal(["4242", null, null, null], keys);   // one key cannot link three rows

        var events = Sql.UniqueName("events");
        await Database.DataSource.ExecuteAsync($$"""
            CREATE TABLE public.{{events}} (customer_id bigint, label text, observed_at timestamptz);
            INSERT INTO public.{{events}} VALUES (4242, '0', clock_timestamp());
            SELECT mad.set_outcomes('online:{{model}}', source => 'public.{{events}}', key => '{customer_id}', label => 'label', observed_at => 'observed_at');
            """);
        // The OIP answer is the model's raw tensors, without the class names the metrics read: not graded.
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.performance(@table)", new { table = $"online:{model}" }));
    }

    [Fact(Timeout = 60_000)]
    public async Task Bad_bindings_say_what_to_do()
    {
        var model = await PushIrisAsync();
        var events = Sql.UniqueName("events");
        await Database.DataSource.ExecuteAsync($"CREATE TABLE public.{events} (customer_id bigint, region text, label text, observed_at timestamptz)");

        var twoColumns = await Assert.ThrowsAsync<PostgresException>(() => Database.DataSource.ExecuteAsync(
            $"SELECT mad.set_outcomes('online:{model}', source => 'public.{events}', key => '{{customer_id,region}}', label => 'label', observed_at => 'observed_at')"));
        Assert.Equal("22023", twoColumns.SqlState);
        Assert.Contains("keyed on one value", twoColumns.MessageText, StringComparison.Ordinal);

        var noModel = await Assert.ThrowsAsync<PostgresException>(() => Database.DataSource.ExecuteAsync(
            $"SELECT mad.set_outcomes('online:no_such_model', source => 'public.{events}', key => '{{customer_id}}', label => 'label', observed_at => 'observed_at')"));
        Assert.Equal("P0002", noModel.SqlState);

        var unbound = await Assert.ThrowsAsync<PostgresException>(() => Database.DataSource.ExecuteAsync($"SELECT * FROM mad.performance('online:{model}')"));
        Assert.Equal("P0002", unbound.SqlState);
        Assert.Contains($"mad.set_outcomes('online:{model}'", unbound.Hint, StringComparison.Ordinal);

        var export = await Assert.ThrowsAsync<ModelAsDataException>(() => new PostgresTrainingSets(Database.DataSource).ExportAsync(new TrainingSetRequest
        {
            PredictionTable = $"online:{model}", Out = Path.Combine(_directory, "none.csv"), Format = TrainingSetFormat.Csv, Seed = 1, Cutoff = DateTimeOffset.UtcNow,
        }, cancellationToken: Ct));
        Assert.Contains("no outcomes bound", export.Message, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(_directory, "none.csv")));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_binding_still_goes_with_its_prediction_table_and_names_what_it_binds()
    {
        // 051 moved mad.outcomes' foreign key to prediction_tables onto a generated column: deleting a table still
        // deletes its binding, and an online binding names its model.
        var (name, _, _, _) = await OutcomeTables.CreateAsync(Database.DataSource);
        var model = await PushIrisAsync();
        var events = Sql.UniqueName("events");
        await Database.DataSource.ExecuteAsync($"""
            CREATE TABLE public.{events} (customer_id bigint, label text, observed_at timestamptz);
            SELECT mad.set_outcomes('online:{model}', source => 'public.{events}', key => '{"{customer_id}"}', label => 'label', observed_at => 'observed_at');
            """);
        var bindings = await Database.DataSource.QueryAsync<(string Name, string? Table, string? Model)>(
            "SELECT prediction_table, bound_table, online_model FROM mad.outcomes WHERE prediction_table IN (@name, @online) ORDER BY 1 DESC",
            new { name, online = $"online:{model}" });
        Assert.Equal([(name, name, null), ($"online:{model}", null, model)], bindings);

        await Database.DataSource.ExecuteAsync("DELETE FROM mad.prediction_tables WHERE name = @name", new { name });
        Assert.Equal(0, await Database.DataSource.ScalarAsync<long>("SELECT count(*) FROM mad.outcomes WHERE prediction_table = @name", new { name }));
    }

    private async Task CallAsync(string model, string features, string? key)
    {
        await using var connection = await Database.DataSource.OpenConnectionAsync(Ct);
        await using var command = new NpgsqlCommand("CALL mad.predict($1, $2::jsonb, NULL, key => $3)", connection)
        {
            Parameters = { new() { Value = model }, new() { Value = features }, new() { Value = (object?)key ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text } },
        };
        await command.ExecuteScalarAsync(Ct);
    }
}
