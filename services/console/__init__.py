"""The console: server-rendered web pages for the people who own the accounts (portfolio,
account, alerts, team), with email-link or proxy sign-in and per-person permissions. Stateless:
it reads scoring's and alerts' HTTP APIs with its own API key (docs/console.md)."""
