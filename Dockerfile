# syntax=docker/dockerfile:1
# Tidings: build against Debian's libpq (no bundled libpq, TLS to PostgreSQL
# through the system libpq/OpenSSL), run as a non-root user on bookworm-slim.

FROM rust:1-bookworm AS builder
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src

# Dependencies first, in their own layer: it is rebuilt only when the manifest
# or the lock file change.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --no-default-features \
 && rm -rf src

# The application itself (sources; migrations and templates are compiled in).
COPY . .
# COPY keeps the files' old mtimes: make sure cargo rebuilds the crate over the stub.
RUN touch src/main.rs src/lib.rs \
 && cargo build --release --locked --no-default-features \
 && strip target/release/tidings

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends libpq5 ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 tidings \
 && useradd --system --uid 10001 --gid tidings --home-dir /app --shell /usr/sbin/nologin tidings \
 && mkdir -p /app/data/outbox \
 && chown -R tidings:tidings /app
COPY --from=builder /src/target/release/tidings /usr/local/bin/tidings
WORKDIR /app
USER tidings
ENV TIDINGS_LISTEN=0.0.0.0:8080
EXPOSE 8080
VOLUME ["/app/data"]
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=6 \
  CMD curl --fail --silent --max-time 3 http://127.0.0.1:8080/health || exit 1
CMD ["tidings", "serve"]
