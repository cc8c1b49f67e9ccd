package installer

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/etcd-appliance/appliance/examples"
)

func newExampleCmd(e *env) *cobra.Command {
	names := examples.Names()
	return &cobra.Command{
		Use:       "example [" + strings.Join(names, "|") + "]",
		Short:     "Print a commented example inventory (static by default)",
		Example:   "  etcd-installer example static > prod.toml\n  etcd-installer example local > local.toml && etcd-installer run local.toml",
		Args:      cobra.MaximumNArgs(1),
		ValidArgs: names,
		RunE: func(cmd *cobra.Command, args []string) error {
			name := "static"
			if len(args) == 1 {
				name = args[0]
			}
			b, err := examples.Get(name)
			if err != nil {
				return fmt.Errorf("no example %q: choose one of %s", name, strings.Join(names, ", "))
			}
			_, err = e.stdout.Write(b)
			return err
		},
	}
}
