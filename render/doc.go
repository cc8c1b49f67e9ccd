// Package render turns a validated inventory into the files each host
// needs (the member's or proxy's environment file, etcdctl's settings,
// unit drop-ins) and the cluster's own artefacts (DNS records, the
// discovery script, the Prometheus scrape configuration, a Procfile). It
// is pure: bytes out, in a fixed order, from text/template files embedded
// here. Package workflow/apply writes them to hosts.
package render
