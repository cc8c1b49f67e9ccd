#!/bin/sh
# Runs after install and after upgrade; it uses no arguments (dpkg and rpm
# pass different ones). It never starts etcd on a fresh install: a member
# started alone creates a one-member cluster in its data dir, which then
# cannot join a multi-member cluster. On upgrade it restarts only what was
# running.
set -e
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/etcd.conf || true
else
	install -d -m 0700 -o etcd -g etcd /var/lib/etcd
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl try-restart etcd.service etcd-grpc-proxy.service || true
fi
