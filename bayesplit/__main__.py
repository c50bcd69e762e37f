from bayesplit.cli import main

main()
