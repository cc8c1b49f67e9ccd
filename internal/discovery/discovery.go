// Package discovery reads what etcd v3 discovery keeps for a cluster on
// its discovery service: the size key the operator puts there before the
// members start (render's discovery.sh) and the members that registered.
// The server waits on it with a STATUS that names what is missing, doctor
// reports it, and render writes the key: one place knows the layout.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"go.etcd.io/etcd/client/pkg/v3/types"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/etcdserver/api/membership"
)

// etcd's layout (server/etcdserver/api/v3discovery): one prefix per token.
const prefix = "/_etcd/registry/"

// SizeKey is the key that holds the expected member count of token.
func SizeKey(token string) string { return prefix + token + "/_config/size" }

// MembersPrefix is where members of token register themselves.
func MembersPrefix(token string) string { return prefix + token + "/members/" }

// MemberKey is where the member with advertised peer URLs registers under
// token: etcd derives the member's ID from them and the token.
func MemberKey(token, name string, peerURLs []string) (string, error) {
	urls, err := types.NewURLs(peerURLs)
	if err != nil {
		return "", err
	}
	return MembersPrefix(token) + membership.NewMember(name, urls, token, nil).ID.String(), nil
}

var (
	// ErrSizeNotSet: nobody ran discovery.sh; etcd fails at once.
	ErrSizeNotSet = errors.New("the size key is not set")
	// ErrBadSize: the size key holds something other than a count.
	ErrBadSize = errors.New("the size key does not hold a positive member count")
)

// State is a token's state on the discovery service.
type State struct {
	// Size is the expected member count; 0 with an error from Read.
	Size int
	// Registered is how many members have registered so far.
	Registered int
	// Keys are the registrations, in the order etcd gives places: by
	// creation, entries etcd ignores (a value without "name=") left out.
	Keys []string
}

// Place is key's place (0-based) among the registrations, -1 when it is
// not registered; a place at or past Size is refused.
func (s State) Place(key string) int { return slices.Index(s.Keys, key) }

// Full reports whether every place is taken: a member that is not one of
// them is refused (etcd's "discovery: cluster is full").
func (s State) Full() bool { return s.Size > 0 && s.Registered >= s.Size }

// Read reads token's state in one transaction, so the count and the size
// belong together. The error wraps ErrSizeNotSet or ErrBadSize when the
// size key is the problem, and the client's error otherwise.
func Read(ctx context.Context, kv clientv3.KV, token string) (State, error) {
	resp, err := kv.Txn(ctx).Then(
		clientv3.OpGet(SizeKey(token)),
		clientv3.OpGet(MembersPrefix(token), clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortAscend)),
	).Commit()
	if err != nil {
		return State{}, err
	}
	size, members := resp.Responses[0].GetResponseRange(), resp.Responses[1].GetResponseRange()
	var st State
	for _, kv := range members.Kvs {
		if strings.ContainsRune(string(kv.Value), '=') {
			st.Keys = append(st.Keys, string(kv.Key))
		}
	}
	st.Registered = len(st.Keys)
	if len(size.Kvs) == 0 {
		return st, ErrSizeNotSet
	}
	n, err := strconv.Atoi(string(size.Kvs[0].Value))
	if err != nil || n <= 0 {
		return st, fmt.Errorf("%w (it holds %q)", ErrBadSize, truncate(string(size.Kvs[0].Value), 20))
	}
	st.Size = n
	return st, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}
