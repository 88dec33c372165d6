# Sourced by scripts/test: start the local services the test suite talks to, if they are down.
# Idempotent. Outside CI a service that cannot be started only makes its tests skip (they say
# which service); under CI=true those tests fail instead, so a broken machine is never green.

start_postgres() {
    if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
        return 0
    fi
    if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
        echo "starting PostgreSQL" >&2
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start \
            >/dev/null 2>&1 || true
        for _ in $(seq 1 50); do
            pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && return 0
            sleep 0.2
        done
    fi
    echo "PostgreSQL is not reachable on 127.0.0.1:5432" >&2
    return 1
}

start_postgres || [ "${CI:-}" != "true" ] || exit 1

# The browser tests (tests/browser) drive Debian's Chromium through playwright, which cannot
# download a browser of its own here.
install_chromium() {
    if [ -x /usr/bin/chromium ]; then
        return 0
    fi
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "installing Chromium" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -qq chromium >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 \
                 && apt-get install -y -qq chromium >/dev/null 2>&1; } \
            || true
    fi
    if [ -x /usr/bin/chromium ]; then
        return 0
    fi
    echo "Chromium is not installed at /usr/bin/chromium" >&2
    return 1
}

install_chromium || [ "${CI:-}" != "true" ] || exit 1
