using Dapper;
using ModelAsData.Core;
using ModelAsData.Postgres;

namespace ModelAsData.Sync;

/// <summary>What a push takes: the device id (default: the one the file holds).</summary>
public sealed record PushOptions
{
    public string? Device { get; init; }
}

/// <summary>
/// What a push sent: the prediction rows and outcomes read from the device file, and how many of each were new
/// centrally; the profile-count rows sent, and per prediction table and version what the central database added or
/// skipped (see <see cref="ProfileCountsPushed.Reason"/>).
/// </summary>
public sealed record PushResult(string Device, long RowsRead, long RowsAdded, long OutcomesRead = 0, long OutcomesAdded = 0)
{
    public long ProfileCountRowsRead { get; init; }

    public IReadOnlyList<ProfileCountsPushed> ProfileCounts { get; init; } = [];

    /// <summary>Counts (rows counted into bins) the central database added from this push.</summary>
    public long ProfileCountsAdded => ProfileCounts.Where(p => p.Status == ProfileCountsPushed.Added).Sum(p => p.Counts);
}

public static partial class ModelSync
{
    /// <summary>
    /// Uploads every prediction-table row the device file holds (with its version and arm; rows that failed to score
    /// stay on the device) into mad.edge_predictions, and the outcomes of its bound sources into mad.edge_outcomes, in one central transaction: the rows are binary-COPied into a
    /// staging table (mad.begin_device_push) and moved by one INSERT (mad.finish_device_push), so a push naming a version the
    /// central database does not hold adds nothing, and rows already pushed are skipped. The device's profile counts
    /// follow in the same transaction (DeviceProfileCounts), so mad.drift covers the fleet. Needs a login in role mad_device.
    /// </summary>
    public static async Task<PushResult> PushAsync(string devicePath, string central, PushOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new PushOptions();
        if (!File.Exists(devicePath))
        {
            throw new ModelAsDataException(ErrorCode.NotFound, $"There is no device file {devicePath}: pull into it first (`mad sync pull --to {devicePath}`).");
        }

        using var syncLock = SyncLock.Take(devicePath);
        await using var device = await OpenDeviceAsync(devicePath, cancellationToken);
        var deviceId = options.Device ?? await device.QuerySingleOrDefaultAsync<string?>("SELECT id FROM mad_device")
            ?? throw new ModelAsDataException(ErrorCode.InvalidArgument,
                $"The device file {devicePath} has no device id yet: pass --device (e.g. --device shop-17); it is kept for the next push.");

        await using var dataSource = PostgresDataSource.Create(central, "mad sync push");
        long read = 0, added = 0, outcomesRead = 0, outcomesAdded = 0, countsRead = 0;
        var plan = await DeviceProfileCounts.PlanAsync(device, deviceId, cancellationToken);
        IReadOnlyList<ProfileCountsPushed> counts = [];
        await RunCentralAsync(dataSource, async () =>
        {
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            // One transaction for the whole push: a refused part rolls back the others.
            await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
            await connection.ExecuteAsync(new CommandDefinition("SELECT mad.begin_device_push(@deviceId)", new { deviceId }, transaction, cancellationToken: cancellationToken));
            read = await DevicePredictions.CopyAsync(device, connection, cancellationToken);
            added = await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT mad.finish_device_push(@deviceId)", new { deviceId }, transaction, cancellationToken: cancellationToken));
            await connection.ExecuteAsync(new CommandDefinition("SELECT mad.begin_push_outcomes(@deviceId)", new { deviceId }, transaction, cancellationToken: cancellationToken));
            outcomesRead = await DeviceOutcomes.CopyAsync(device, connection, cancellationToken);
            outcomesAdded = await connection.ExecuteScalarAsync<long>(new CommandDefinition("SELECT mad.finish_push_outcomes(@deviceId)", new { deviceId }, transaction, cancellationToken: cancellationToken));
            // Drift of the fleet (047): the device's counts, as totals the central side keeps per device.
            await connection.ExecuteAsync(new CommandDefinition("SELECT mad.begin_push_profile_counts(@deviceId)", new { deviceId }, transaction, cancellationToken: cancellationToken));
            countsRead = await DeviceProfileCounts.CopyAsync(device, connection, plan, cancellationToken);
            counts = await DeviceProfileCounts.FinishAsync(connection, transaction, deviceId, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        });

        await device.ExecuteAsync(SyncSql.DevicePushed, new { id = deviceId, now = SyncTime.Now() });
        await DeviceProfileCounts.MarkAsync(device, plan, counts, cancellationToken);
        return new PushResult(deviceId, read, added, outcomesRead, outcomesAdded) { ProfileCountRowsRead = countsRead, ProfileCounts = counts };
    }
}
