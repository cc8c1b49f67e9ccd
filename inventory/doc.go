// Package inventory is the model of an etcd cluster as the operator
// describes it in one TOML file: members, proxies, TLS, bootstrap mode and
// tuning. It loads a file strictly, fills in defaults (etcd's own, from
// embed.NewConfig) and validates it, each step pure, every problem keyed
// by TOML path and line with its fix. It also derives what every other
// package needs from the model: URLs, data dirs, the initial cluster,
// which host this machine is. It never touches the disk or the network;
// package render turns an inventory into files.
package inventory
