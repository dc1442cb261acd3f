from madvae.cli import main

main()
