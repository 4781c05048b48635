import sys

from lsp_server.llama_build.install import main

sys.exit(main())
