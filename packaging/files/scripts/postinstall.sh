#!/bin/sh
# Runs after install and after upgrade; it uses no arguments (dpkg and rpm
# pass different ones). It never starts etcd on a fresh install: a member
# started alone creates a one-member cluster in its data dir, which then
# cannot join a multi-member cluster. On upgrade it restarts only what was
# running, a member only when that is safe (etcd-installer safe-restart).
# When a distribution's etcd (Debian's etcd-server, EL's etcd) left its
# settings or data, it says so and names the one command that migrates
# them (etcd refuses data of releases before 3.6 anyway).
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
	systemctl try-restart etcd-grpc-proxy.service || true
	# A running member restarts only while its cluster keeps quorum
	# without it, and never with another member (a lock held in etcd):
	# `apt upgrade` may run on every host at the same moment. When that
	# is not safe, the old process goes on serving and the reason is
	# printed; the upgrade itself succeeds.
	case $(systemctl is-active etcd.service 2>/dev/null || true) in
	active | activating | reloading)
		/usr/bin/etcd-installer safe-restart --reason "upgrade of the etcd package" ||
			echo "etcd: etcd.service was not restarted safely (see above: it keeps running the previous etcd, or did not come back); once the cause is fixed, run: etcd-installer safe-restart" >&2
		;;
	esac
fi
if [ -x /usr/bin/etcd-installer ]; then
	/usr/bin/etcd-installer migrate --check 2>/dev/null || true
fi
