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
# Debian's and Ubuntu's etcd-server ship their unit as
# /lib/systemd/system/etcd.service, which on a merged-/usr system is this
# package's /usr/lib/systemd/system/etcd.service under another name: when
# dpkg removes etcd-server in favour of this package, it deletes ours
# (seen on Debian 12). A diversion of their name, removed again by the
# post-install script, keeps ours (the recipe of Debian's DEP 17).
if command -v dpkg-divert >/dev/null 2>&1 && [ -L /lib ] &&
	dpkg-query -S /lib/systemd/system/etcd.service 2>/dev/null | grep -q '^etcd-server:'; then
	dpkg-divert --package etcd --no-rename --quiet \
		--divert /lib/systemd/system/etcd.service.etcd-server --add /lib/systemd/system/etcd.service
fi
