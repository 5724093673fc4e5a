from registrator.cli import main

main()
