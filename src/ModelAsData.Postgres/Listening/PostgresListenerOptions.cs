namespace ModelAsData.Postgres.Listening;

/// <summary>How a <see cref="PostgresListener"/> keeps its connection alive and reconnects.</summary>
/// <param name="KeepAlive">Idle time after which the listener sends a keepalive query, so a dead server or a dropped
/// NAT entry is noticed while waiting; rounded to whole seconds.</param>
/// <param name="ReconnectMinDelay">The first wait after a dropped connection; doubled after each failed attempt.</param>
/// <param name="ReconnectMaxDelay">The longest wait between attempts.</param>
/// <param name="ApplicationName">The listener's application_name, to find its session in pg_stat_activity.</param>
public sealed record PostgresListenerOptions(
    TimeSpan? KeepAlive = null,
    TimeSpan? ReconnectMinDelay = null,
    TimeSpan? ReconnectMaxDelay = null,
    string ApplicationName = "mad listener")
{
    public TimeSpan KeepAliveInterval => KeepAlive ?? TimeSpan.FromSeconds(10);

    public TimeSpan MinDelay => ReconnectMinDelay ?? TimeSpan.FromMilliseconds(250);

    public TimeSpan MaxDelay => ReconnectMaxDelay ?? TimeSpan.FromSeconds(30);

    /// <summary>Throws naming the setting when a value makes no sense; called once by the listener.</summary>
    public void Validate()
    {
        if (KeepAliveInterval < TimeSpan.FromSeconds(1))
        {
            throw new ArgumentOutOfRangeException(nameof(KeepAlive), KeepAliveInterval, "KeepAlive must be at least one second.");
        }

        if (MinDelay <= TimeSpan.Zero || MaxDelay < MinDelay)
        {
            throw new ArgumentOutOfRangeException(nameof(ReconnectMinDelay), MinDelay,
                $"ReconnectMinDelay must be positive and at most ReconnectMaxDelay ({MaxDelay}).");
        }
    }
}
