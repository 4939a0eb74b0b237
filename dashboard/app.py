"""CIFAR-10 model dashboard. Run from the repository root:

    streamlit run dashboard/app.py

Reads the committed artifacts in saved_models/ (override with SAVED_MODELS_DIR) and tuning/
(override with TUNING_DIR); needs no internet. Listens on 127.0.0.1 only
(dashboard/.streamlit/config.toml).
"""

import streamlit as st

from dashboard import caching, discovery, formatting

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
formatting.inject_css()


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


with st.sidebar:
    models, problem = discovery.discover_models()
    st.caption(f"Models folder: `{discovery.display_path(discovery.models_root())}`")
    if problem:
        st.caption(":orange[No classifiers found]")
    else:
        deliverables = sum(m.kind == "deliverable" for m in models)
        others = sum(m.kind == "model" for m in models)
        experiments = sum(m.kind == "experiment" for m in models)
        parts = [plural(deliverables, "deliverable classifier")]
        if others:
            parts.append(plural(others, "other saved model"))
        parts.append(plural(experiments, "experiment"))
        st.caption(", ".join(parts))
    st.caption("Test set: CIFAR-10, 10,000 images, 10 classes")

caching.prefetch_test_set()  # once per server, in the background
page.run()
