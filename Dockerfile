# The forwarder, producer and collector in one small image.
#
#   docker build -t ezssh/siem-forwarder .
#   docker run --rm ezssh/siem-forwarder forwarder --help
#
# The default command is `forwarder run`; docker-compose.yml runs the producer
# and the collector from the same image. Settings come from the environment
# (README.md lists them).

# The builder runs on the build machine and cross-compiles for the target
# platform, so a multi-platform build does not emulate the Go toolchain.
FROM --platform=$BUILDPLATFORM golang:1.26 AS build
WORKDIR /src
# RUN --mount needs BuildKit, Docker's builder since 23.0 and Compose v2's.
# Dependencies first, into caches kept between builds.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
# Static binaries (no cgo: the final image has no libc), without the build
# machine's paths (-trimpath) or symbol tables (-s -w).
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-buildvcs=false \
    go build -trimpath -ldflags='-s -w' -o /out/bin/ ./cmd/forwarder ./cmd/producer ./cmd/collector \
 && mkdir -p /out/data

# Distroless static: CA certificates, tzdata, /etc/passwd with the nonroot
# user (65532), no shell and no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/bin/ /usr/local/bin/
# The working directory is writable by the nonroot user: without NATS_URL the
# forwarder keeps its embedded server's data in ./forwarder-data (mount a
# volume on /data to keep it).
COPY --from=build --chown=65532:65532 /out/data/ /data/
WORKDIR /data
USER 65532:65532
# In a container loopback reaches nothing: listen on every interface of the
# container's own network (docker-compose.yml publishes only to the host's
# loopback).
ENV FORWARDER_HTTP_ADDR=0.0.0.0:8080 COLLECTOR_ADDR=0.0.0.0:8088
EXPOSE 8080 8088
CMD ["forwarder", "run"]
