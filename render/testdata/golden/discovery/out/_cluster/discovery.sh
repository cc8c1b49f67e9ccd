0755
#!/bin/sh
# Prepares the etcd v3 discovery service for cluster disc
# (bootstrap = "discovery"). Run once, before the members start: they wait
# until 3 members have registered under the token.
# Rendered by etcd-installer from the inventory of cluster disc.
set -eu
etcdctl --endpoints=http://10.9.0.1:2379,http://10.9.0.2:2379 put /_etcd/registry/disc-cluster-7/_config/size 3
