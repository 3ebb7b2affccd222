# The sidecar (`mad serve`) as a container. Build from the repository root:
#   docker build -t modelasdata/mad .
# Multi-stage: the SDK publishes src/ModelAsData.Cli; the runtime image (ASP.NET Core, for the HTTP endpoint) runs it.
FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /src
COPY global.json Directory.Build.props Directory.Packages.props ModelAsData.sln ./
COPY src/ src/
COPY sql/ sql/
COPY models/ models/
RUN dotnet publish src/ModelAsData.Cli/ModelAsData.Cli.csproj -c Release -r linux-x64 --self-contained false -o /app

FROM mcr.microsoft.com/dotnet/aspnet:10.0 AS runtime
WORKDIR /app
COPY --from=build /app ./
# Not root inside the container.
USER app
# Inside a container the door listens on every interface (that is how a container publishes a port). Tokens are
# always required (`docker compose run --rm migrate tokens create --role <role> --label <label>`), and /metrics is off
# on a non-loopback door: set MAD_METRICS=0.0.0.0:9464 to give Prometheus an address of its own (docs/SECURITY.md,
# "The HTTP door").
ENV MAD_HTTP=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/mad.dll"]
CMD ["serve"]
