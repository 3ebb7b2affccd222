using ModelAsData.Core.Monitoring;
using ModelAsData.Core.Onnx;
using Npgsql;
using NpgsqlTypes;

namespace ModelAsData.Postgres.Monitoring;

/// <summary>
/// The PostgreSQL side of counting scored rows into their version's baseline bins (issue 16): each door asks for a
/// <see cref="ProfileCounter"/> once per unit of work (a refresh task, a stream pass, a request batch), calls it per
/// row, and adds its counts with <see cref="AddAsync"/> in the transaction that writes the rows. Stateless and
/// thread-safe; does not own the connections it is given.
/// </summary>
public static class PostgresProfileCounts
{
    /// <summary>
    /// A counter for a version scored over <paramref name="inputColumns"/> into <paramref name="outputColumns"/>,
    /// or a learning counter when the version has no baseline: <see cref="AddAsync"/> then stores the first window's
    /// reference fitted on the values it kept (mad.store_first_window) and counts them into its bins.
    /// </summary>
    public static async Task<ProfileCounter?> CounterAsync(NpgsqlConnection connection, string model, int version,
        IReadOnlyList<string> inputColumns, IReadOnlyList<OutputColumn> outputColumns, CancellationToken cancellationToken)
    {
        var profiles = await BaselineAsync(connection, model, version, cancellationToken);
        if (profiles is null)
        {
            return null; // counting is off (mad.settings drift_counting = 0)
        }

        return profiles.Count == 0 ? ProfileCounter.Learn(model, version, inputColumns, outputColumns) : ProfileCounter.Create(profiles, inputColumns, outputColumns);
    }

    /// <summary>A version's baseline profiles (none: no baseline); null when counting is off (026_4: drift_counting = 0).</summary>
    public static async Task<IReadOnlyList<ColumnProfile>?> BaselineAsync(NpgsqlConnection connection, string model, int version, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(MonitoringSql.Baseline, connection) { Parameters = { new() { Value = model }, new() { Value = version } } };
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        var profiles = new List<ColumnProfile>();
        while (await reader.ReadAsync(cancellationToken))
        {
            if (reader.IsDBNull(0))
            {
                return null; // the switch's row: counting is off
            }

            profiles.Add(new ColumnProfile(
                reader.GetString(1),
                reader.GetString(0) == "input" ? ProfileKind.Input : ProfileKind.Output,
                reader.GetString(2) == "numeric" ? ProfileType.Numeric : ProfileType.Category,
                reader.IsDBNull(3) ? null : reader.GetFieldValue<double[]>(3),
                reader.IsDBNull(4) ? null : reader.GetFieldValue<string[]>(4),
                reader.GetFieldValue<long[]>(5),
                reader.GetInt64(6),
                reader.GetDouble(7)));
        }

        return profiles;
    }

    /// <summary>Adds the counter's counts (and empties it) to the table's profile counts, in <paramref name="transaction"/>.</summary>
    public static async Task AddAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string table, int version, DateTime scoredAt,
        ProfileCounter counter, CancellationToken cancellationToken)
    {
        if (counter.IsLearning)
        {
            await StoreFirstWindowAsync(connection, transaction, table, version, counter, cancellationToken);
        }

        var counts = counter.Drain();
        if (counts.Count == 0)
        {
            return;
        }

        await using var command = new NpgsqlCommand(MonitoringSql.AddCounts, connection, transaction)
        {
            Parameters =
            {
                new() { Value = table },
                new() { Value = version },
                new() { Value = scoredAt, NpgsqlDbType = NpgsqlDbType.TimestampTz },
                new() { Value = counts.Select(c => c.Kind == ProfileKind.Input ? "input" : "output").ToArray() },
                new() { Value = counts.Select(c => c.Column).ToArray() },
                new() { Value = counts.Select(c => c.Bin).ToArray() },
                new() { Value = counts.Select(c => c.Count).ToArray() },
            },
        };
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Stores the first-window reference a learning counter fitted (unless a profile exists), and adopts the version's reference.</summary>
    private static async Task StoreFirstWindowAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, string table, int version,
        ProfileCounter counter, CancellationToken cancellationToken)
    {
        var learned = counter.LearnedProfiles();
        foreach (var (kind, name) in new[] { (ProfileKind.Input, "input"), (ProfileKind.Output, "output") })
        {
            var profiles = learned.Where(p => p.Kind == kind).ToList();
            if (profiles.Count == 0)
            {
                continue;
            }

            await using var command = new NpgsqlCommand(MonitoringSql.StoreFirstWindow, connection, transaction)
            {
                Parameters =
                {
                    new() { Value = table },
                    new() { Value = version },
                    new() { Value = name },
                    new() { Value = ProfileJson.ToJson(profiles).ToJsonString(), NpgsqlDbType = NpgsqlDbType.Text },
                },
            };
            await command.ExecuteScalarAsync(cancellationToken);
        }

        counter.Adopt(await BaselineAsync(connection, counter.LearningModel!, version, cancellationToken) ?? []);
    }
}
