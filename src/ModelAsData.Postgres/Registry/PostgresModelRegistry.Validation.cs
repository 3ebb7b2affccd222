using System.Globalization;
using Dapper;
using ModelAsData.Core;
using ModelAsData.Core.Registry;

namespace ModelAsData.Postgres.Registry;

public sealed partial class PostgresModelRegistry
{
    /// <summary>
    /// Waits until a sidecar has validated a version and returns it <c>ready</c> or <c>rejected</c>: for
    /// <c>mad models push … --alias</c>, since an alias may only point at a ready version. Listens on
    /// <c>mad_models</c> and re-reads the version on every notification (and at least every second). After
    /// <paramref name="timeout"/> throws <see cref="ErrorCode.Timeout"/>, saying whether any sidecar is running.
    /// </summary>
    public Task<ModelVersion> WaitForValidationAsync(string model, int version, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        RunAsync(async connection =>
        {
            await connection.ExecuteAsync(Command(RegistrySql.ListenModels, null, cancellationToken));
            var deadline = DateTime.UtcNow + timeout;
            while (true)
            {
                var row = await connection.QuerySingleOrDefaultAsync<VersionRow>(Command(RegistrySql.Version, new { model, version }, cancellationToken));
                if (row is null)
                {
                    // mad.resolve names what is missing.
                    await connection.ExecuteScalarAsync<int>(Command(RegistrySql.Resolve, new { model, target = version.ToString(CultureInfo.InvariantCulture) }, cancellationToken));
                }
                else if (row.Status != "pending")
                {
                    return row.ToModel();
                }

                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    var sidecars = await connection.ExecuteScalarAsync<int>(Command(RegistrySql.LiveSidecars, null, cancellationToken));
                    throw new ModelAsDataException(ErrorCode.Timeout, sidecars == 0
                        ? $"Model '{model}' v{version} is still pending after {timeout.TotalSeconds:0.#} s because no sidecar is running: start one with `mad serve`; it validates pending versions when it starts."
                        : $"Model '{model}' v{version} is still pending after {timeout.TotalSeconds:0.#} s although {sidecars} sidecar(s) are running: a large model takes longer to load; wait, or check the sidecars' logs.");
                }

                // A timed-out wait leaves the connection usable (a cancelled one would not), hence the timeout form.
                // Whole milliseconds, at least one: Npgsql passes them to Socket.ReceiveTimeout, where 0 means "forever".
                await connection.WaitAsync(TimeSpan.FromMilliseconds(Math.Clamp(Math.Ceiling(left.TotalMilliseconds), 1, 1000)), cancellationToken);
            }
        }, cancellationToken);
}
