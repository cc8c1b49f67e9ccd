// Package docs holds the project's documentation (the Markdown files
// here and README.md); its test runs their shell blocks as written.
package docs
