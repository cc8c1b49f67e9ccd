package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/etcd-appliance/appliance/inventory"
)

// OthersOf returns the client URLs of every inventory member but name.
func OthersOf(inv *inventory.Inventory, name string) []string {
	var eps []string
	for i := range inv.Members {
		if inv.Members[i].Name != name {
			eps = append(eps, inv.ClientURL(&inv.Members[i]))
		}
	}
	return eps
}

// HealthyVoting counts the voting members that answer a linearizable read,
// except skip, and names the others.
func HealthyVoting(ctx context.Context, c Membership, members []Member, skip string) (voting, healthy int, down []string) {
	for _, m := range members {
		if m.Learner {
			continue
		}
		voting++
		if m.Name == skip {
			continue
		}
		ok := false
		for _, u := range m.ClientURLs {
			hctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := c.Healthy(hctx, u)
			cancel()
			if err == nil {
				ok = true
				break
			}
		}
		if ok {
			healthy++
		} else {
			label := m.Name
			if label == "" {
				label = fmt.Sprintf("%x", m.ID)
			}
			down = append(down, label)
		}
	}
	return voting, healthy, down
}

// RunningMembers connects to the members other than name and lists the
// cluster's members; the caller closes the connection.
func RunningMembers(ctx context.Context, inv *inventory.Inventory, name string, dial Dialer) (Membership, []Member, error) {
	c, err := dial(OthersOf(inv, name))
	if err != nil {
		return nil, nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	members, err := c.Members(cctx)
	cancel()
	if err != nil {
		c.Close()
		return nil, nil, fmt.Errorf("the running cluster does not answer: %w", err)
	}
	return c, members, nil
}

// LeaderName is the leader's member name, or "" when no member says.
func LeaderName(ctx context.Context, inv *inventory.Inventory, dial Dialer) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	m, err := dial(inv.ClientURLs())
	if err != nil {
		return ""
	}
	defer m.Close()
	members, err := m.Members(ctx)
	if err != nil {
		return ""
	}
	for _, ep := range inv.ClientURLs() {
		st := m.Status(ctx, ep)
		if st.Err != nil || st.Leader == 0 {
			continue
		}
		for _, mm := range members {
			if mm.ID == st.Leader {
				return mm.Name
			}
		}
	}
	return ""
}
