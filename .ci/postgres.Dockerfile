# CI-only stand-in for postgres:16 when the registry's image cannot be pulled (.ci/docker.sh builds it on
# CI's Debian bookworm base, adding Debian's `postgresql` package): the same contract as the official image for what
# deploy/docker-compose.yaml uses: POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB, the scripts in
# /docker-entrypoint-initdb.d run once on a new data folder, port 5432, data in /var/lib/postgresql/data.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ENV PGDATA=/var/lib/postgresql/data PATH=/usr/lib/postgresql/15/bin:$PATH
# Debian would create and start a `main` cluster; the entrypoint makes its own in $PGDATA.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/ci.conf \
    && apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null \
    && rm -rf /var/lib/apt/lists/*
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN chmod 755 /usr/local/bin/docker-entrypoint.sh && mkdir -p /docker-entrypoint-initdb.d "$PGDATA" \
    /run/postgresql && chown -R postgres:postgres "$PGDATA" /run/postgresql
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
