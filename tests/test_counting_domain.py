"""complexity.counting.domain: one lattice type, checked against brute force."""
from hypothesis import given, strategies as st

from complexity.counting.domain import Lattice, contains, text

steps = st.sampled_from([1, 2, 3, 4, 6, 8, 16, 32, 64])


@st.composite
def lattices(draw):
    step = draw(steps)
    return Lattice(draw(st.integers(0, 200)), step, draw(st.integers(0, step - 1)))


@given(lattices(), st.integers(-50, 400))
def test_membership_is_brute_force(lat, v):
    assert lat.contains(v) == (v >= lat.min and any(v == lat.residue + k * lat.step
                                                     for k in range(-1, 500)))


@given(lattices(), st.integers(-50, 400))
def test_first_at_least_is_the_least_member_at_or_above(lat, x):
    first = lat.first_at_least(x)
    assert first >= x and lat.contains(first)
    assert not any(lat.contains(v) for v in range(x, first))


@given(lattices(), st.integers(-50, 400))
def test_starting_at_keeps_the_class_from_its_first_value(lat, x):
    moved = lat.starting_at(x)
    assert (moved.step, moved.residue) == (lat.step, lat.residue)
    assert moved.min >= x and moved.min - x < lat.step and moved.contains(moved.min)


@given(lattices(), lattices())
def test_meet_is_the_intersection(a, b):
    both = a.meet(b)
    top = max(a.min, b.min) + 2 * a.step * b.step + 1
    members = [v for v in range(top) if a.contains(v) and b.contains(v)]
    if both is None:
        assert members == []
    else:
        assert members == [v for v in range(top) if both.contains(v)]


@given(lattices())
def test_dict_round_trip(lat):
    assert Lattice.from_dict(lat.to_dict()) == lat
    assert list(lat.to_dict()) == ["min", "step", "residue"]  # the order JSON prints


@given(lattices(), st.sampled_from(["H", "W", "n", "NF"]))
def test_text_round_trip(lat, name):
    """The words give the lattice back (the step printed only when above 1)."""
    words = lat.text(name)
    head, _, rest = words.partition(", ")
    assert head == f"{name} >= {lat.min}"
    if lat.step == 1:
        assert rest == ""
    else:
        residue, step = rest[len(f"{name} ≡ "):-1].split(" (mod ")
        assert Lattice(lat.min, int(step), int(residue)) == lat


@given(st.dictionaries(st.sampled_from("BHWn"), lattices(), min_size=1),
       st.dictionaries(st.sampled_from("BHWn"), st.integers(0, 300)))
def test_domain_membership_is_every_symbols(domain, point):
    point = {n: v for n, v in point.items() if n in domain}
    as_dicts = {n: lat.to_dict() for n, lat in domain.items()}
    expected = all(domain[n].contains(v) for n, v in point.items())
    assert contains(domain, point) == contains(as_dicts, point) == expected


def test_the_two_renderings_are_pinned():
    d = {"B": {"min": 1, "step": 1, "residue": 0}, "H": {"min": 8, "step": 4, "residue": 0},
         "W": {"min": 8, "step": 4, "residue": 0}}
    assert text(d, ["B", "H", "W"], ", ") == \
        "B >= 1, H >= 8, H ≡ 0 (mod 4), W >= 8, W ≡ 0 (mod 4)"
    assert text(d, ["H", "B"], "; ", ["floor(H/8) != 3"]) == \
        "H >= 8, H ≡ 0 (mod 4); B >= 1; floor(H/8) != 3"


# ------------------------------------------------- the lattice search derive and fit share
def test_scan_narrows_to_the_floors_period():
    from complexity.counting.lattice import scan
    assert scan(lambda o: [(9 + o) // 8, 3 * (9 + o) ** 2], 2, 2, 3, 0) == (8, 2)


def test_scan_says_why_no_step_fits():
    import pytest

    from complexity.counting.lattice import Changed, NoLattice, scan

    def fails(o):
        raise RuntimeError("too big")

    def changes(o):
        if o:
            raise Changed("the schedule changed")
        return [1]

    with pytest.raises(NoLattice) as e:
        scan(fails, 2, 2, 3, 0)
    assert e.value.only_failures and e.value.changed == ""
    with pytest.raises(NoLattice) as e:
        scan(lambda o: [2 ** o], 2, 2, 3, 0)
    assert not e.value.only_failures
    with pytest.raises(NoLattice) as e:
        scan(changes, 2, 2, 3, 0)
    assert e.value.changed == "the schedule changed"
