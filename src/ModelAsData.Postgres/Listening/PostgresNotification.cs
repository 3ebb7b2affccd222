namespace ModelAsData.Postgres.Listening;

/// <summary>One NOTIFY received by a <see cref="PostgresListener"/>.</summary>
/// <param name="ProcessId">The backend process id of the session that sent it.</param>
public sealed record PostgresNotification(string Channel, string Payload, int ProcessId);
