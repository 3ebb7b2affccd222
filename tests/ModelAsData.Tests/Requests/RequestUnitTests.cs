using System.Net;
using System.Text.Json.Nodes;
using ModelAsData.Core;
using ModelAsData.Sidecar.Requests;

namespace ModelAsData.Tests.Requests;

public sealed class RequestUnitTests
{
    [Fact]
    public void Jsonb_text_sorts_keys_by_length_then_bytes_with_postgres_separators()
    {
        var json = JsonNode.Parse("""{"zz":1,"a":[5.1,3.5,"x\"y"],"bbb":{"k":true,"j":null}}""");

        // What PostgreSQL prints for the same value cast to jsonb.
        Assert.Equal("""{"a": [5.1, 3.5, "x\"y"], "zz": 1, "bbb": {"j": null, "k": true}}""", JsonbText.Write(json));
    }

    [Fact]
    public void The_input_hash_is_the_sha256_hex_of_the_utf8_text()
    {
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", PredictionLog.Hash(""));
    }

    [Theory]
    [InlineData("8080", "127.0.0.1", 8080)]
    [InlineData("127.0.0.1:8080", "127.0.0.1", 8080)]
    [InlineData("0.0.0.0:9000", "0.0.0.0", 9000)]
    [InlineData("[::1]:8080", "::1", 8080)]
    [InlineData("localhost:81", "127.0.0.1", 81)]
    [InlineData("http://127.0.0.1:8080/", "127.0.0.1", 8080)]
    public void Http_endpoints_bind_to_loopback_unless_told_otherwise(string text, string address, int port)
    {
        var endpoint = HttpEndpoint.Parse(text);

        Assert.Equal(IPAddress.Parse(address), endpoint.Address);
        Assert.Equal(port, endpoint.Port);
    }

    [Theory]
    [InlineData("example.com:80")]
    [InlineData("127.0.0.1:http")]
    [InlineData("127.0.0.1:70000")]
    public void A_bad_http_endpoint_is_refused_with_what_it_takes(string text)
    {
        var error = Assert.Throws<ModelAsDataException>(() => HttpEndpoint.Parse(text));

        Assert.Equal(ErrorCode.InvalidArgument, error.Code);
        Assert.Contains("--http", error.Message, StringComparison.Ordinal);
    }
}
