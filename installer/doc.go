// Package installer turns an inventory (one TOML file describing an etcd
// cluster) into the files each host needs. It is pure: bytes in, bytes
// out. It never touches the disk or the network; package provision does.
//
// The steps are Load (strict decoding), Defaults and Validate, each pure,
// then Render.
package installer
