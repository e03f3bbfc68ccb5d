from urunc.cli import main

raise SystemExit(main())
