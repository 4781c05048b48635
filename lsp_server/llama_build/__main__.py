import sys

from lsp_server.llama_build.cli import main

sys.exit(main())
