namespace ModelAsData.Sidecar.Streaming;

/// <summary>
/// This sidecar's <see cref="StreamTableState"/> of every table it has streamed: a table whose batch fails pauses on
/// its own (<see cref="StreamTableState.MayRetry"/>) while the others go on. Used by the worker's loop only.
/// </summary>
internal sealed class StreamTableStates
{
    private readonly Dictionary<string, StreamTableState> _states = [];

    public StreamTableState Of(string table)
    {
        if (!_states.TryGetValue(table, out var state))
        {
            state = new StreamTableState();
            _states[table] = state;
        }

        return state;
    }
}
