#!/bin/sh
# Runs after removal, and after an upgrade removed the old version. dpkg
# and rpm pass different arguments, so /usr/bin/etcd tells them apart: an
# upgrade has already put the new one there. The data dir is never
# deleted, not even on purge.
set -e
# An install that failed after the pre-install script diverted
# etcd-server's unit path (see there) must not leave the diversion: a
# later etcd-server would unpack its unit under the diverted name.
if command -v dpkg-divert >/dev/null 2>&1 &&
	dpkg-divert --listpackage /lib/systemd/system/etcd.service 2>/dev/null | grep -qx etcd; then
	dpkg-divert --package etcd --no-rename --quiet --remove /lib/systemd/system/etcd.service
fi
if [ ! -e /usr/bin/etcd ]; then
	if [ -d /run/systemd/system ]; then
		systemctl stop etcd.service etcd-grpc-proxy.service >/dev/null 2>&1 || true
	fi
	rm -f /etc/systemd/system/multi-user.target.wants/etcd.service \
		/etc/systemd/system/multi-user.target.wants/etcd-grpc-proxy.service
	if [ -d /var/lib/etcd ]; then
		echo "etcd: the data in /var/lib/etcd is kept; delete it yourself once it is no longer needed." >&2
	fi
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload || true
fi
