using System.Globalization;
using System.Net;
using ModelAsData.Core;

namespace ModelAsData.Sidecar.Requests;

/// <summary>Where the HTTP endpoint listens: <c>127.0.0.1:8080</c>, <c>0.0.0.0:8080</c>, <c>[::1]:8080</c>, or <c>8080</c> (loopback).</summary>
public sealed record HttpEndpoint(IPAddress Address, int Port)
{
    public static HttpEndpoint Parse(string text)
    {
        var value = text.Trim();
        if (value.StartsWith("http://", StringComparison.OrdinalIgnoreCase))
        {
            value = value["http://".Length..].TrimEnd('/');
        }

        string host = "127.0.0.1", port = value;
        var colon = value.LastIndexOf(':');
        if (colon >= 0)
        {
            host = value[..colon].Trim('[', ']');
            port = value[(colon + 1)..];
        }

        if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out var number) || number > 65535)
        {
            throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--http takes host:port or a port (e.g. 127.0.0.1:8080), not '{text}'.");
        }

        var address = host switch
        {
            "localhost" or "" => IPAddress.Loopback,
            "*" => IPAddress.Any,
            _ when IPAddress.TryParse(host, out var parsed) => parsed,
            _ => throw new ModelAsDataException(ErrorCode.InvalidArgument, $"--http takes an IP address (127.0.0.1, 0.0.0.0, ::1) and a port, not '{text}'."),
        };
        return new HttpEndpoint(address, number);
    }

    public override string ToString() => Address.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 ? $"[{Address}]:{Port}" : $"{Address}:{Port}";
}
