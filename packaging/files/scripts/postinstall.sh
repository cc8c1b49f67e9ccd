#!/bin/sh
# Runs after install and after upgrade; it uses no arguments (dpkg and rpm
# pass different ones). It never starts etcd on a fresh install: a member
# started alone creates a one-member cluster in its data dir, which then
# cannot join a multi-member cluster. On upgrade it restarts only what was
# running. When a distribution's etcd (Debian's etcd-server, EL's etcd)
# left its settings or data, it says so and names the one command that
# migrates them (etcd refuses data of releases before 3.6 anyway).
set -e
# The diversion the pre-install script may have made has served once
# etcd-server is gone.
if command -v dpkg-divert >/dev/null 2>&1 &&
	dpkg-divert --listpackage /lib/systemd/system/etcd.service 2>/dev/null | grep -qx etcd; then
	dpkg-divert --package etcd --no-rename --quiet --remove /lib/systemd/system/etcd.service
fi
if command -v systemd-tmpfiles >/dev/null 2>&1; then
	systemd-tmpfiles --create /usr/lib/tmpfiles.d/etcd.conf || true
else
	install -d -m 0700 -o etcd -g etcd /var/lib/etcd
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
	systemctl try-restart etcd.service etcd-grpc-proxy.service || true
fi
if [ -x /usr/bin/etcd-installer ]; then
	/usr/bin/etcd-installer migrate --check 2>/dev/null || true
fi
