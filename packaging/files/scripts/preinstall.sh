#!/bin/sh
# Creates the etcd system user before the files that belong to it are
# unpacked. dpkg and rpm pass different arguments: this script uses none.
set -e
if ! getent passwd etcd >/dev/null 2>&1; then
	if command -v systemd-sysusers >/dev/null 2>&1; then
		echo 'u etcd - "etcd key-value store" /var/lib/etcd' | systemd-sysusers -
	else
		useradd --system --user-group --home-dir /var/lib/etcd --no-create-home \
			--shell /usr/sbin/nologin --comment "etcd key-value store" etcd
	fi
fi
