"""CIFAR-10 model dashboard. Run from the repository root:

    streamlit run dashboard/app.py

Reads the committed artifacts in saved_models/ (override with SAVED_MODELS_DIR) and tuning/
(override with TUNING_DIR); needs no internet.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import common  # noqa: E402

st.set_page_config(
    page_title="CIFAR-10 model dashboard",
    page_icon=":material/neurology:",
    layout="wide",
    initial_sidebar_state="expanded",
)

PAGES = {
    "Models": [
        st.Page("views/overview.py", title="Overview", icon=":material/dashboard:",
                default=True),  # served at the root URL
        st.Page("views/confusion.py", title="Confusion explorer", icon=":material/grid_on:",
                url_path="confusion"),
        st.Page("views/try_it.py", title="Try it", icon=":material/image_search:",
                url_path="try-it"),
        st.Page("views/latency.py", title="Live latency", icon=":material/speed:",
                url_path="latency"),
        st.Page("views/search.py", title="Search results", icon=":material/tune:",
                url_path="search"),
    ],
    "Generate": [
        st.Page("views/prompt.py", title="Prompt to image", icon=":material/brush:",
                url_path="prompt"),
    ],
}

page = st.navigation(PAGES)

# Look and error display are set in dashboard/.streamlit/config.toml.
common.inject_css()

with st.sidebar:
    models, problem = common.discover_models()
    st.caption(f"Models folder: `{common.display_path(common.models_root())}`")
    if problem:
        st.caption(":orange[No classifiers found]")
    else:
        st.caption(f"{len(models)} classifier{'s' if len(models) != 1 else ''} found")
    st.caption("Test set: CIFAR-10, 10,000 images, 10 classes")

common.prefetch_test_set()  # once per server, in the background
page.run()
