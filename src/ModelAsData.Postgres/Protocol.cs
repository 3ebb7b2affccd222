namespace ModelAsData.Postgres;

/// <summary>
/// The protocol constants the C# code shares with the <c>mad</c> SQL functions, in one place: NOTIFY channels,
/// SQLSTATEs, advisory-lock keys and log event ids. docs/PROTOCOL.md has the same table; the SQL side lists them in
/// sql/postgres/001_schemas_and_roles.sql. Each value has one meaning.
/// </summary>
public static partial class Protocol
{
    /// <summary>NOTIFY channels. A notification is a wake-up call: the work it announces is always a row first.</summary>
    public static class Channels
    {
        /// <summary>A version was pushed or its status changed; an alias moved (payload: model name, or <c>push:</c>…).</summary>
        public const string Models = "mad_models";

        /// <summary>A refresh job has tasks to claim.</summary>
        public const string Jobs = "mad_jobs";

        /// <summary>A watched table has keys in its outbox (payload: the table's name, or <see cref="PlanChangedPrefix"/> + name).</summary>
        public const string Rows = "mad_rows";

        /// <summary>The prefix of a <see cref="Rows"/> payload that says a table's plan changed (writers send the bare name).</summary>
        public const string PlanChangedPrefix = "plan:";

        /// <summary>An online request is waiting.</summary>
        public const string Requests = "mad_requests";

        /// <summary>An asynchronous request was answered.</summary>
        public const string Reply = "mad_reply";
    }
}
