// Command composecheck loads a Compose file with compose-go, the Compose Specification's
// reference loader (the one `docker compose` runs), and prints the resolved project as JSON.
//
// It validates against the specification's JSON schema, interpolates ${VAR:-default} and
// ${VAR:?error} from the defaults in the file only (neither the caller's environment nor a .env
// file, so the result is the same everywhere), resolves YAML anchors and merges, checks that
// every depends_on target exists, and enables every profile. It needs no Docker engine.
//
// Usage: composecheck docker-compose.yml
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/compose-spec/compose-go/v2/cli"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: composecheck FILE")
		os.Exit(2)
	}
	options, err := cli.NewProjectOptions(
		[]string{os.Args[1]},
		cli.WithName("hookstream"),
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	out, err := project.MarshalJSON()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if _, err := os.Stdout.Write(out); err != nil {
		os.Exit(1)
	}
}
