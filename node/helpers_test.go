package node

import (
	"sort"
	"strconv"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
	"go.etcd.io/etcd/pkg/v3/featuregate"
	"net/url"
)

func urlsOf(us []url.URL) string { return types.URLs(us).String() }

func itoa(i int) string { return strconv.Itoa(i) }

func keys(m map[string]struct{}) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func featureOf(name string) featuregate.Feature { return featuregate.Feature(name) }
