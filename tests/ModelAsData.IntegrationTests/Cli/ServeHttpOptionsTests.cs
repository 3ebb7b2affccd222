namespace ModelAsData.IntegrationTests.Cli;

/// <summary><c>mad serve</c>'s HTTP options through the real parser: a limit that makes no sense stops it before it starts, saying which.</summary>
public sealed class ServeHttpOptionsTests(PostgresDatabase database) : MadCliTests(database)
{
    [Theory(Timeout = 60_000)]
    [InlineData("--http-max-rows", "0", "row limit")]
    [InlineData("--http-max-body-bytes", "10", "body limit")]
    [InlineData("--http-auth-cache", "-1", "token cache time")]
    [InlineData("--max-loaded-versions", "0", "MaxLoadedVersions")]
    [InlineData("--metrics", "nowhere", "--metrics takes on, off or host:port")]
    public async Task A_senseless_http_option_is_refused_with_its_name(string option, string value, string named)
    {
        var result = await RunAsync("serve", "--http", option, value);

        Assert.Equal(18, result.ExitCode); // InvalidArgument
        Assert.Contains(named, result.Output, StringComparison.Ordinal);
    }
}
