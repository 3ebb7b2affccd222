using Npgsql;

namespace ModelAsData.Bench;

/// <summary>
/// One writer of the stream bench: its own connection with the one-row and the many-row INSERT prepared, each
/// statement its own (autocommit) transaction, as an application writing rows would. Owns and disposes the
/// connection; one statement at a time (not thread-safe).
/// </summary>
internal sealed class StreamWriter : IAsyncDisposable
{
    private static readonly float[][] s_rows = [[5.1f, 3.5f, 1.4f, 0.2f], [7.0f, 3.2f, 4.7f, 1.4f], [6.3f, 3.3f, 6.0f, 2.5f], [5.9f, 3.0f, 5.1f, 1.8f]];

    private readonly NpgsqlConnection _connection;
    private readonly NpgsqlCommand _one;
    private readonly NpgsqlCommand _many;

    private StreamWriter(NpgsqlConnection connection)
    {
        _connection = connection;
        _one = new NpgsqlCommand(StreamBenchSql.InsertOne, connection);
        _many = new NpgsqlCommand(StreamBenchSql.InsertMany, connection);
        foreach (var command in new[] { _one, _many })
        {
            for (var i = 0; i < 5; i++)
            {
                command.Parameters.Add(new NpgsqlParameter());
            }
        }
    }

    public static async Task<StreamWriter> OpenAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        var writer = new StreamWriter(await dataSource.OpenConnectionAsync(cancellationToken));
        writer.SetOne(0);
        writer.SetMany(0, 1);
        await writer._one.PrepareAsync(cancellationToken);
        await writer._many.PrepareAsync(cancellationToken);
        return writer;
    }

    public static async Task<StreamWriter[]> OpenAsync(NpgsqlDataSource dataSource, int count, CancellationToken cancellationToken)
    {
        var writers = new StreamWriter[count];
        for (var i = 0; i < count; i++)
        {
            writers[i] = await OpenAsync(dataSource, cancellationToken);
        }

        return writers;
    }

    /// <summary>The features of row <paramref name="id"/>: valid iris-like values, varying with the id.</summary>
    public static float Feature(long id, int column) => s_rows[id % s_rows.Length][column] + (id % 10 * 0.01f);

    public async Task InsertOneAsync(long id, CancellationToken cancellationToken)
    {
        SetOne(id);
        await _one.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>Inserts ids <paramref name="firstId"/> .. + <paramref name="count"/> − 1 in one statement.</summary>
    public async Task InsertManyAsync(long firstId, int count, CancellationToken cancellationToken)
    {
        SetMany(firstId, count);
        await _many.ExecuteNonQueryAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        await _one.DisposeAsync();
        await _many.DisposeAsync();
        await _connection.DisposeAsync();
    }

    private void SetOne(long id)
    {
        _one.Parameters[0].Value = id;
        for (var c = 0; c < 4; c++)
        {
            _one.Parameters[c + 1].Value = Feature(id, c);
        }
    }

    private void SetMany(long firstId, int count)
    {
        var ids = new long[count];
        var columns = new float[4][];
        for (var c = 0; c < 4; c++)
        {
            columns[c] = new float[count];
        }

        for (var i = 0; i < count; i++)
        {
            ids[i] = firstId + i;
            for (var c = 0; c < 4; c++)
            {
                columns[c][i] = Feature(ids[i], c);
            }
        }

        _many.Parameters[0].Value = ids;
        for (var c = 0; c < 4; c++)
        {
            _many.Parameters[c + 1].Value = columns[c];
        }
    }
}
