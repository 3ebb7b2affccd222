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
ENV MAD_HTTP=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["dotnet", "/app/mad.dll"]
CMD ["serve"]
