// Package guardrails holds repository-wide tests: every package documented,
// the server runtime free of installer-only dependencies.
package guardrails
