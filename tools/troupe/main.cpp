// PLACEHOLDER: replaced by the CLI (subcommands serve, generate, plan).
int main() { return 0; }
