using ModelAsData.Core;
using ModelAsData.Postgres;

namespace ModelAsData.Tests.Postgres;

public sealed class PostgresConnectionStringTests
{
    [Fact]
    public void A_libpq_uri_becomes_npgsql_settings()
    {
        var settings = PostgresConnectionString.Parse("postgres://ana%40corp:p%3Ass@db.example.com:6543/sales%20db?sslmode=verify-full&application_name=mad_ci");

        Assert.Equal("db.example.com", settings.Host);
        Assert.Equal(6543, settings.Port);
        Assert.Equal("ana@corp", settings.Username);
        Assert.Equal("p:ss", settings.Password);
        Assert.Equal("sales db", settings.Database);
        Assert.Equal(Npgsql.SslMode.VerifyFull, settings.SslMode);
        Assert.Equal("mad_ci", settings.ApplicationName);
    }

    [Fact]
    public void A_uri_without_port_or_user_keeps_the_defaults()
    {
        var settings = PostgresConnectionString.Parse("postgresql://localhost/mad");

        Assert.Equal(("localhost", 5432, "mad"), (settings.Host, settings.Port, settings.Database));
        Assert.Null(settings.Username);
    }

    [Fact]
    public void A_connection_string_is_read_as_it_is()
    {
        var settings = PostgresConnectionString.Parse("Host=10.0.0.5;Port=5433;Database=mad;Username=me");

        Assert.Equal(("10.0.0.5", 5433, "mad", "me"), (settings.Host, settings.Port, settings.Database, settings.Username));
    }

    [Theory]
    [InlineData("Hots=localhost")]
    [InlineData("postgres://localhost/mad?no_such_setting=1")]
    public void Unreadable_text_is_an_invalid_argument_that_shows_both_forms(string text)
    {
        var error = Assert.Throws<ModelAsDataException>(() => PostgresConnectionString.Parse(text));

        Assert.Equal(ErrorCode.InvalidArgument, error.Code);
        Assert.Contains("Host=localhost", error.Message, StringComparison.Ordinal);
        Assert.Contains("postgres://", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void The_sidecars_data_source_pins_search_path_over_the_users_and_the_clis_keeps_it()
    {
        const string given = "Host=localhost;Database=mad;Username=me;Search Path=public";

        using var sidecar = PostgresDataSource.Create(given, "mad serve", pinSearchPath: true);
        using var cli = PostgresDataSource.Create(given);

        Assert.Equal("pg_catalog, pg_temp", new Npgsql.NpgsqlConnectionStringBuilder(sidecar.ConnectionString).SearchPath);
        Assert.Equal("public", new Npgsql.NpgsqlConnectionStringBuilder(cli.ConnectionString).SearchPath);
    }

    [Fact]
    public void The_sidecars_lock_timeout_is_a_startup_option_appended_after_the_users_options()
    {
        const string given = "Host=localhost;Database=mad;Username=me;Options=-c statement_timeout=0 -c lock_timeout=0";

        using var sidecar = PostgresDataSource.Create(given, "mad serve", pinSearchPath: true, lockTimeout: TimeSpan.FromSeconds(2.5));
        using var cli = PostgresDataSource.Create(given);

        // The server applies options in order: the appended one wins over the user's lock_timeout=0.
        Assert.Equal("-c statement_timeout=0 -c lock_timeout=0 -c lock_timeout=2500ms", new Npgsql.NpgsqlConnectionStringBuilder(sidecar.ConnectionString).Options);
        Assert.Equal("-c statement_timeout=0 -c lock_timeout=0", new Npgsql.NpgsqlConnectionStringBuilder(cli.ConnectionString).Options);
        Assert.Equal("-c lock_timeout=2ms", PostgresConnectionString.PinLockTimeout(new Npgsql.NpgsqlConnectionStringBuilder(), TimeSpan.FromMilliseconds(1.2)).Options);
        Assert.Throws<ArgumentOutOfRangeException>(() => PostgresConnectionString.PinLockTimeout(new Npgsql.NpgsqlConnectionStringBuilder(), TimeSpan.Zero)); // 0 would mean "wait forever"
    }
}
